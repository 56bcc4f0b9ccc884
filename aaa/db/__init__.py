"""The shared database: one declarative base, all models, engine set-up, migrations."""
