"""The semantic-convention names we emit, as plain strings.

Why not import them from ``opentelemetry-semantic-conventions``: its incubating modules are large
(``gen_ai_metrics`` alone costs about 4 ms of CPU to import, ``gen_ai_attributes`` about 1 ms), and
that is paid on every cold start (billed in AWS Lambda) for a dozen strings. Each name here is
checked against the package's constant by ``tests/test_cold_start.py``, so a rename upstream fails
the tests rather than drifting silently.
"""

from typing import Final

# --- span and metric attributes (``opentelemetry.semconv._incubating.attributes.gen_ai_attributes``)
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
#: ``GenAiProviderNameValues.AWS_BEDROCK``.
GEN_AI_PROVIDER_NAME_AWS_BEDROCK: Final = "aws.bedrock"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_REQUEST_MAX_TOKENS: Final = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_TEMPERATURE: Final = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P: Final = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K: Final = "gen_ai.request.top_k"
GEN_AI_REQUEST_STOP_SEQUENCES: Final = "gen_ai.request.stop_sequences"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"

# --- other attributes
#: ``..._incubating.attributes.aws_attributes.AWS_REQUEST_ID``.
AWS_REQUEST_ID: Final = "aws.request_id"
#: ``opentelemetry.semconv.attributes.error_attributes.ERROR_TYPE``.
ERROR_TYPE: Final = "error.type"
#: ``opentelemetry.semconv.attributes.server_attributes``.
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"

# --- instruments (``opentelemetry.semconv._incubating.metrics.gen_ai_metrics``)
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"
GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.operation.time_per_output_chunk"
