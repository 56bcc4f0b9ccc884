"""RADIUS protocol core: a sans-IO codec, dictionaries, authenticators, PAP/CHAP/MS-CHAP
and the duplicate-reply cache.  No sockets and no clocks in here."""

from aaa.radius.auth import (
    MsChap2Result,
    challenge_response,
    chap_response,
    check_chap,
    check_mschap1,
    check_mschap2,
    check_pap,
    mppe_key_attribute_value,
    mppe_master_key,
    mppe_start_key,
    mschap2_authenticator_response,
    mschap2_nt_response,
    nt_password_hash,
    strip_domain,
)
from aaa.radius.authenticators import (
    build_reply,
    build_request,
    new_authenticator,
    proxy_states,
    verify_message_authenticator,
    verify_reply,
    verify_request_authenticator,
)
from aaa.radius.codecs import AttrValue, Codec, Tagged
from aaa.radius.codes import ACCESS_REPLIES, HASHED_REQUESTS, PacketCode
from aaa.radius.dedup import IN_PROGRESS, DuplicateCache, cache_key, request_key
from aaa.radius.dictionary import AttributeDef, AttrKey, Dictionary, load_dictionary
from aaa.radius.encode import encode_attribute, encode_attributes, encode_packet
from aaa.radius.errors import DictionaryError, EncodeError, MalformedPacket
from aaa.radius.hiding import hide_password, salt_decrypt, salt_encrypt, unhide_password
from aaa.radius.packet import Packet, decode

__all__ = [
    "ACCESS_REPLIES",
    "HASHED_REQUESTS",
    "IN_PROGRESS",
    "AttrKey",
    "AttrValue",
    "AttributeDef",
    "Codec",
    "Dictionary",
    "DictionaryError",
    "DuplicateCache",
    "EncodeError",
    "MalformedPacket",
    "MsChap2Result",
    "Packet",
    "PacketCode",
    "Tagged",
    "build_reply",
    "build_request",
    "cache_key",
    "challenge_response",
    "chap_response",
    "check_chap",
    "check_mschap1",
    "check_mschap2",
    "check_pap",
    "decode",
    "encode_attribute",
    "encode_attributes",
    "encode_packet",
    "hide_password",
    "load_dictionary",
    "mppe_key_attribute_value",
    "mppe_master_key",
    "mppe_start_key",
    "mschap2_authenticator_response",
    "mschap2_nt_response",
    "new_authenticator",
    "nt_password_hash",
    "proxy_states",
    "request_key",
    "salt_decrypt",
    "salt_encrypt",
    "strip_domain",
    "unhide_password",
    "verify_message_authenticator",
    "verify_reply",
    "verify_request_authenticator",
]
