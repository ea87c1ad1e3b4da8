"""A minimal, deterministic guardrail, so guardrail-shaped responses can be tested offline.

Bedrock applies a guardrail when InvokeModel carries ``X-Amzn-Bedrock-GuardrailIdentifier`` or
Converse a ``guardrailConfig``. The emulator's guardrail knows two policies: denied topics (words a
test registers with :meth:`Guardrails.deny_topic`; the input is blocked and the reply is the blocked
message) and one sensitive-information regex, ten-digit account numbers (anonymized: the guardrail
intervenes, the call proceeds). The response then carries ``amazon-bedrock-guardrailAction`` (and,
with trace enabled, ``amazon-bedrock-trace``) in InvokeModel bodies and chunks, or ``trace`` and the
``guardrail_intervened`` stop reason in Converse, in the shapes recorded from Bedrock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .families.base import Json, as_dict

BLOCKED_MESSAGE = "Sorry, the model cannot answer this question."
_ACCOUNT_NUMBER = re.compile(r"\b\d{10}\b")


@dataclass(frozen=True, slots=True)
class GuardrailVerdict:
    identifier: str
    trace: bool
    blocked: bool
    anonymized: bool
    message: str
    input_characters: int

    @property
    def action(self) -> str:
        return "INTERVENED" if self.blocked or self.anonymized else "NONE"

    @property
    def intervened(self) -> bool:
        return self.action == "INTERVENED"


def _metrics(characters: int) -> Json:
    return {
        "guardrailProcessingLatency": 1,
        "usage": {
            "topicPolicyUnits": 1,
            "contentPolicyUnits": 1,
            "wordPolicyUnits": 1,
            "sensitiveInformationPolicyUnits": 1,
            "sensitiveInformationPolicyFreeUnits": 0,
            "contextualGroundingPolicyUnits": 0,
        },
        "guardrailCoverage": {"textCharacters": {"guarded": characters, "total": characters}},
    }


def _input_assessment(verdict: GuardrailVerdict) -> Json:
    assessment: Json = {"invocationMetrics": _metrics(verdict.input_characters)}
    if verdict.blocked:
        assessment["topicPolicy"] = {
            "topics": [{"name": "denied-topic", "type": "DENY", "action": "BLOCKED"}]
        }
    if verdict.anonymized:
        assessment["sensitiveInformationPolicy"] = {
            "regexes": [
                {"name": "Account Number", "regex": r"\b\d{10}\b", "match": "", "action": "ANONYMIZED"}
            ]
        }
    return assessment


class Guardrails:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._denied: dict[str, list[tuple[str, str]]] = {}

    def deny_topic(self, identifier: str, word: str, message: str = BLOCKED_MESSAGE) -> None:
        """Block any input that contains ``word`` (case-insensitive, whole word) under this guardrail."""
        with self._lock:
            self._denied.setdefault(identifier, []).append((word.lower(), message))

    def clear(self) -> None:
        with self._lock:
            self._denied.clear()

    def assess(self, identifier: str, trace: bool, input_text: str) -> GuardrailVerdict:
        with self._lock:
            denied = list(self._denied.get(identifier, ()))
        words = set(re.findall(r"\w+", input_text.lower()))
        message = next((text for word, text in denied if word in words), None)
        return GuardrailVerdict(
            identifier=identifier,
            trace=trace,
            blocked=message is not None,
            anonymized=bool(_ACCOUNT_NUMBER.search(input_text)),
            message=message or BLOCKED_MESSAGE,
            input_characters=len(input_text),
        )

    def for_invoke(self, headers: Mapping[str, str], input_text: str) -> GuardrailVerdict | None:
        identifier = headers.get("x-amzn-bedrock-guardrailidentifier")
        if not identifier:
            return None
        trace = headers.get("x-amzn-bedrock-trace", "").upper() in ("ENABLED", "ENABLED_FULL")
        return self.assess(identifier, trace, input_text)

    def for_converse(self, request: Json, input_text: str) -> GuardrailVerdict | None:
        config = as_dict(request.get("guardrailConfig"))
        identifier = config.get("guardrailIdentifier")
        if not isinstance(identifier, str) or not identifier:
            return None
        return self.assess(
            identifier, str(config.get("trace", "")).lower() in ("enabled", "enabled_full"), input_text
        )


def invoke_trace(verdict: GuardrailVerdict, output_text: str) -> Json:
    guardrail: Json = {"input": {verdict.identifier: _input_assessment(verdict)}}
    if not verdict.blocked:
        guardrail["outputs"] = [{verdict.identifier: {"invocationMetrics": _metrics(len(output_text))}}]
    if verdict.intervened:
        guardrail["actionReason"] = "Guardrail blocked." if verdict.blocked else "Guardrail masked."
    return {"guardrail": guardrail}


def converse_trace(verdict: GuardrailVerdict, output_text: str) -> Json:
    guardrail: Json = {"inputAssessment": {verdict.identifier: _input_assessment(verdict)}}
    if not verdict.blocked:
        guardrail["outputAssessments"] = {
            verdict.identifier: [{"invocationMetrics": _metrics(len(output_text))}]
        }
    if verdict.intervened:
        guardrail["actionReason"] = "Guardrail blocked." if verdict.blocked else "Guardrail masked."
    return {"guardrail": guardrail}


def add_invoke_fields(
    payload: dict[str, Any], verdict: GuardrailVerdict | None, output_text: str, last: bool
) -> None:
    """Guardrail fields of an InvokeModel body or stream chunk (trace only on the body / last chunk)."""
    if verdict is None:
        return
    payload["amazon-bedrock-guardrailAction"] = verdict.action
    if verdict.trace and last:
        payload["amazon-bedrock-trace"] = invoke_trace(verdict, output_text)
