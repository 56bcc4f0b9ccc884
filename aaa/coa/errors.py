"""RFC 5176 Error-Cause values: their meaning in English and as HubSoft operators know them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCause:
    code: int
    name: str
    meaning: str
    meaning_pt: str


_CAUSES = (
    ErrorCause(201, "Residual Session Context Removed", "the session was removed (success)",
               "Sessão residual removida (sucesso)"),
    ErrorCause(202, "Invalid EAP Packet (Ignored)", "an EAP packet was invalid and ignored",
               "Pacote EAP inválido (ignorado)"),
    ErrorCause(401, "Unsupported Attribute",
               "we sent an attribute the NAS does not support: check the NAS vendor",
               "O sistema enviou um atributo não suportado, verificar o tipo de NAS."),
    ErrorCause(402, "Missing Attribute", "we left out an attribute the NAS needs: check the NAS vendor",
               "O sistema não enviou um atributo importante, verificar o tipo de NAS."),
    ErrorCause(403, "NAS Identification Mismatch",
               "the NAS identification we sent does not match the NAS: check its IP and vendor",
               "O sistema não enviou uma identificação correta para o concentrador, "
               "verificar o tipo de NAS."),
    ErrorCause(404, "Invalid Request", "the NAS found the request invalid or unsupported: call support",
               "O sistema enviou uma requisição inválida ou não suportada. Chamar o Suporte."),
    ErrorCause(405, "Unsupported Service", "unusual: call support",
               "Incomum, chamar o Suporte caso ocorra."),
    ErrorCause(406, "Unsupported Extension", "unusual: call support",
               "Incomum, chamar o Suporte caso ocorra."),
    ErrorCause(407, "Invalid Attribute Value", "an attribute value was refused by the NAS",
               "O concentrador recusou o valor de um atributo."),
    ErrorCause(501, "Administratively Prohibited", "the NAS is not allowed to carry out the request",
               "O NAS não possui permissões para executar a requisição."),
    ErrorCause(502, "Request Not Routable (Proxy)", "a proxy could not route the request",
               "A requisição não pôde ser encaminhada (proxy)."),
    ErrorCause(503, "Session Context Not Found",
               "the subscriber was not found on the NAS: maybe already disconnected",
               "O assinante não foi encontrado no NAS, talvez já esteja desconectado."),
    ErrorCause(504, "Session Context Not Removable",
               "the subscriber is connected but could not be disconnected",
               "O assinante encontra-se conectado, mas não foi possível desconectá-lo."),
    ErrorCause(505, "Other Proxy Processing Error", "a proxy failed to process the request",
               "Erro de processamento no proxy."),
    ErrorCause(506, "Resources Unavailable", "the NAS lacked resources (memory, ...) to finish",
               "O NAS não conseguiu finalizar a requisição por falta de recursos. (Memória, etc)"),
    ErrorCause(507, "Request Initiated", "the NAS started the request (e.g. a re-authentication)",
               "Requisição iniciada pelo NAS."),
    ErrorCause(508, "Multiple Session Selection Unsupported",
               "the attributes match several sessions and the NAS cannot act on several",
               "Os atributos identificam várias sessões e o NAS não suporta isso."),
)
ERROR_CAUSES: dict[int, ErrorCause] = {cause.code: cause for cause in _CAUSES}


def describe(code: int | None) -> ErrorCause | None:
    if code is None:
        return None
    return ERROR_CAUSES.get(code) or ErrorCause(code, f"Error-Cause {code}", "unknown cause",
                                                "causa desconhecida")
