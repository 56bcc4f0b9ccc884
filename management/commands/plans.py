"""`aaa plan ...` and `aaa var ...`"""

from __future__ import annotations

import click

from aaa.cliutil import AppState, format_option, pass_state, render
from management import plans, serialize, variables


@click.group("plan")
def plan_group() -> None:
    """Plans: speeds in kbit/s, price, default pool."""


@plan_group.command("add")
@click.argument("name")
@click.option("--download", type=click.IntRange(min=1), required=True, help="kbit/s")
@click.option("--upload", type=click.IntRange(min=1), required=True, help="kbit/s")
@click.option("--price", default="0", help="Monthly price in BRL, e.g. 99.90")
@click.option("--pool", help="Default IP pool name (Framed-Pool).")
@click.option("--technology")
@click.option("--allows-association", is_flag=True)
@format_option
@pass_state
def add(state: AppState, name: str, download: int, upload: int, price: str, pool: str | None,
        technology: str | None, allows_association: bool) -> None:
    """Create a plan."""
    with state.context() as ctx:
        data = serialize.plan(plans.create_plan(ctx, name, download, upload, price, technology,
                                                pool, allows_association))
    render(state, data)


@plan_group.command("list")
@format_option
@pass_state
def list_(state: AppState) -> None:
    """List plans."""
    with state.reading() as session:
        render(state, [serialize.plan(p) for p in plans.list_plans(session)])


@plan_group.command("clone")
@click.argument("source")
@click.argument("new_name")
@format_option
@pass_state
def clone(state: AppState, source: str, new_name: str) -> None:
    """Create NEW_NAME as a copy of SOURCE."""
    with state.context() as ctx:
        data = serialize.plan(plans.clone_plan(ctx, source, new_name))
    render(state, data)


@plan_group.command("mass-change")
@click.argument("from_plan")
@click.argument("to_plan")
@click.option("--update-price", is_flag=True, help="Charge the new plan's price.")
@format_option
@pass_state
def mass_change(state: AppState, from_plan: str, to_plan: str, update_price: bool) -> None:
    """Move every live service of FROM_PLAN to TO_PLAN."""
    with state.context() as ctx:
        changed = plans.mass_change(ctx, from_plan, to_plan, update_price)
        data = [serialize.service(s) for s in changed]
    render(state, data)


@click.group("var")
def var_group() -> None:
    """System variables (POOL_SUSPENSAO_TOTAL, ...)."""


@var_group.command("set")
@click.argument("key")
@click.argument("value")
@format_option
@pass_state
def var_set(state: AppState, key: str, value: str) -> None:
    """Set a variable."""
    with state.context() as ctx:
        row = variables.set_variable(ctx, key, value)
        data = {"key": row.key, "value": row.value}
    render(state, data)


@var_group.command("get")
@click.argument("key")
@format_option
@pass_state
def var_get(state: AppState, key: str) -> None:
    """Show a variable."""
    with state.reading() as session:
        row = variables.get_variable(session, key)
        render(state, {"key": row.key, "value": row.value})


@var_group.command("list")
@click.option("--known", is_flag=True, help="List the documented keys and their meaning.")
@format_option
@pass_state
def var_list(state: AppState, known: bool) -> None:
    """List variables."""
    if known:
        render(state, [{"key": k, "meaning": v} for k, v in variables.KNOWN_VARIABLES.items()])
        return
    with state.reading() as session:
        render(state, [{"key": v.key, "value": v.value,
                        "meaning": variables.KNOWN_VARIABLES.get(v.key)}
                       for v in variables.list_variables(session)])


COMMANDS = [plan_group, var_group]
