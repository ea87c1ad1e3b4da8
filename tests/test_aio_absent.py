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
        assert "otel_bedrock_tokens._aio_hooks" not in sys.modules
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
        assert type(wrapper._self_wrapper).__name__ == "AioBedrockHook", wrapper
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

        from aiobotocore.client import AioBaseClient  # both registered hooks are cancelled
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
        assert type(wrapper._self_wrapper).__name__ == "AioBedrockHook"
        assert not hasattr(wrapper.__wrapped__, "_self_wrapper")  # one level, not two
        instrumentor.uninstrument()
        assert not hasattr(AioBaseClient.__dict__["_make_api_call"], "_self_wrapper")
        print("ok")
        """
    )
    assert out == "ok"
