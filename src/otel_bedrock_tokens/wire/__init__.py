"""Bedrock on the wire: raw HTTP requests and response bytes, for clients that bypass botocore.

The anthropic SDK (``AnthropicBedrock``, ``AnthropicBedrockMantle``), litellm and the ``openai`` SDK
pointed at bedrock-mantle send their own HTTP requests, so the botocore adapters never see them. These
modules recognize such a request from its method, path and headers (:mod:`.request`), decode the
response bytes as the application reads them (:mod:`.eventstream`, :mod:`.sse`) and read the usage out
of the decoded JSON with the same parsing code as the botocore path (:mod:`.mantle`). Nothing here
touches spans or any HTTP library: a transport adapter feeds bytes in and takes facts out.
"""
