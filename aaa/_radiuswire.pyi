def parse_access_request(
    data: bytes, secret: bytes, /
) -> tuple[int, bytes, bytes, bytes | None, bytes | None, bytes | None, bytes | None, bytes | None,
           bytes] | None: ...

def sign_access_reply(
    code: int, identifier: int, request_authenticator: bytes, attributes: bytes, proxy_states: bytes,
    secret: bytes, /
) -> bytes: ...
