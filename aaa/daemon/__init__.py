"""The RADIUS daemon's parts: request pipeline, view refresher, auth-log writer, metrics."""
