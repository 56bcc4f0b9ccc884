from collections.abc import Container

def split_attributes(
    data: bytes, odd_vendors: Container[int], /
) -> tuple[tuple[tuple[int | tuple[int, int], bytes], ...], int, int] | None: ...
