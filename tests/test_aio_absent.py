"""aiobotocore is optional: without it nothing is imported, registered or patched; with it installed
but unused, it is still never imported by us (it is patched when the app imports it). Each case runs
in a fresh interpreter, so what is imported is what that case imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip()


def test_without_aiobotocore_nothing_is_imported_or_registered() -> None:
    out = run_python(
        """
        import sys
        sys.modules["aiobotocore"] = None  # as if it were not installed: find_spec answers None
        import wrapt.importer
        from otel_bedrock_tokens import BedrockTokensInstrumentor
        from otel_bedrock_tokens.instrumentor import _installed

        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument()
        assert not _installed("aiobotocore")
        assert BedrockTokensInstrumentor._aio is None
        assert "aiobotocore.client" not in getattr(wrapt.importer, "_post_import_hooks", {})
        assert not [name for name in sys.modules if name.startswith(("aiobotocore.", "aiohttp"))]
        assert "otel_bedrock_tokens.aiobotocore_adapter" not in sys.modules
        instrumentor.uninstrument()
        print("ok")
        """
    )
    assert out == "ok"


def test_installed_but_unused_aiobotocore_is_not_imported_until_the_app_imports_it() -> None:
    pytest.importorskip("aiobotocore")
    out = run_python(
        """
        import sys
        from otel_bedrock_tokens import BedrockTokensInstrumentor

        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument()
        assert "aiobotocore" not in sys.modules and "aiohttp" not in sys.modules

        from aiobotocore.client import AioBaseClient  # the app imports it: patched now
        wrapper = AioBaseClient.__dict__["_make_api_call"]
        assert type(wrapper._self_wrapper).__name__ == "AioBotocoreAdapter", wrapper
        instrumentor.uninstrument()
        assert not hasattr(AioBaseClient.__dict__["_make_api_call"], "_self_wrapper")
        print("ok")
        """
    )
    assert out == "ok"


def test_uninstrumented_before_the_import_patches_nothing() -> None:
    pytest.importorskip("aiobotocore")
    out = run_python(
        """
        from otel_bedrock_tokens import BedrockTokensInstrumentor

        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        instrumentor.instrument()
        instrumentor.uninstrument()

        from aiobotocore.client import AioBaseClient  # nothing is current: the callback applies nothing
        assert not hasattr(AioBaseClient.__dict__["_make_api_call"], "_self_wrapper")
        print("ok")
        """
    )
    assert out == "ok"


def test_reinstrumented_before_the_import_patches_once() -> None:
    pytest.importorskip("aiobotocore")
    out = run_python(
        """
        from otel_bedrock_tokens import BedrockTokensInstrumentor

        instrumentor = BedrockTokensInstrumentor()
        instrumentor.instrument()
        instrumentor.uninstrument()
        instrumentor.instrument()

        from aiobotocore.client import AioBaseClient
        wrapper = AioBaseClient.__dict__["_make_api_call"]
        assert type(wrapper._self_wrapper).__name__ == "AioBotocoreAdapter"
        assert not hasattr(wrapper.__wrapped__, "_self_wrapper")  # one level, not two
        instrumentor.uninstrument()
        assert not hasattr(AioBaseClient.__dict__["_make_api_call"], "_self_wrapper")
        print("ok")
        """
    )
    assert out == "ok"


#: Run in the subprocess before the cycles' checks: a tracer provider, an emulator, and the counts.
_CYCLES_PRELUDE = """
    import gc, sys, threading
    import wrapt.importer
    from botocore.client import BaseClient
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from otel_bedrock_tokens import BedrockTokensInstrumentor, instrumentor as module
    from otel_bedrock_tokens.botocore_adapter import BotocoreAdapter
    from otel_bedrock_tokens.lifecycle import Lifecycle
    from otel_bedrock_tokens.emulator import BedrockEmulator
    from otel_bedrock_tokens.prediction import Predictor

    ORIGINAL = BaseClient.__dict__["_make_api_call"]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    threads = threading.active_count()
    instrumentor = BedrockTokensInstrumentor()
    for _ in range(1000):
        instrumentor.instrument(tracer_provider=provider, count_tokens="parallel")
        instrumentor.uninstrument()
    gc.collect()
    assert "aiobotocore.client" not in sys.modules
    registered = wrapt.importer._post_import_hooks.get("aiobotocore.client") or []
    ours = [callback for callback in registered if getattr(callback, "__module__", None) == module.__name__]
    assert len(ours) <= 1, f"{len(ours)} import callbacks of ours"
    kinds = (BotocoreAdapter, Lifecycle, Predictor, module._AioPatch)
    alive = [o for o in gc.get_objects() if isinstance(o, kinds)]
    assert not alive, f"{len(alive)} objects of ours alive, e.g. {alive[:3]}"
    assert threading.active_count() == threads
    assert BaseClient.__dict__["_make_api_call"] is ORIGINAL

    async def converse(endpoint_url):
        from aiobotocore.session import get_session
        async with get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=endpoint_url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ) as client:
            await client.converse(
                modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                messages=[{"role": "user", "content": [{"text": "cycles"}]}],
            )
"""


def test_a_thousand_cycles_leave_nothing_and_a_later_import_is_still_measured() -> None:
    """One import callback per process, reading the current instrumentation: instrument /
    uninstrument cycles before aiobotocore is imported leave no callback, adapter, predictor or thread
    behind, and the instrumentation current at the import is the one applied, one layer deep."""
    pytest.importorskip("aiobotocore")
    out = run_python(
        _CYCLES_PRELUDE
        + """
    import asyncio
    instrumentor.instrument(tracer_provider=provider)
    from aiobotocore.client import AioBaseClient  # the app imports it now: patched, one layer
    wrapper = AioBaseClient.__dict__["_make_api_call"]
    assert type(wrapper._self_wrapper).__name__ == "AioBotocoreAdapter"
    assert not hasattr(wrapper.__wrapped__, "_self_wrapper")
    assert not hasattr(BaseClient.__dict__["_make_api_call"].__wrapped__, "_self_wrapper")
    original_aio = wrapper.__wrapped__
    with BedrockEmulator() as emulator:
        asyncio.run(converse(emulator.endpoint_url))
    assert [span.name for span in exporter.get_finished_spans()] == [
        "chat anthropic.claude-3-5-haiku-20241022-v1:0"
    ]
    instrumentor.uninstrument()
    assert AioBaseClient.__dict__["_make_api_call"] is original_aio
    assert BaseClient.__dict__["_make_api_call"] is ORIGINAL
    print("ok")
    """
    )
    assert out == "ok"


def test_a_thousand_cycles_then_an_import_applies_nothing() -> None:
    pytest.importorskip("aiobotocore")
    out = run_python(
        _CYCLES_PRELUDE
        + """
    import asyncio
    from aiobotocore.client import AioBaseClient
    assert not hasattr(AioBaseClient.__dict__["_make_api_call"], "_self_wrapper")
    with BedrockEmulator() as emulator:
        asyncio.run(converse(emulator.endpoint_url))
    assert exporter.get_finished_spans() == ()
    print("ok")
    """
    )
    assert out == "ok"
