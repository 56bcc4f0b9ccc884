from collections.abc import Container
from typing import Any

def split_attributes(
    data: bytes, odd_vendors: Container[int], /
) -> tuple[tuple[tuple[int | tuple[int, int], bytes], ...], int, int] | None: ...

def pg_array_literals(rows: list[tuple[Any, ...]], kinds: bytes, /) -> list[str]: ...

def pg_copy_binary(rows: list[tuple[Any, ...]], kinds: bytes, limits: tuple[int, ...], /) -> bytes: ...
