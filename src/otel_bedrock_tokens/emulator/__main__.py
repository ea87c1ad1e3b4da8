"""``python -m otel_bedrock_tokens.emulator [options]``: the same as ``otel-bedrock-tokens emulator``."""

import sys

from ..cli import main

sys.exit(main(["emulator", *sys.argv[1:]]))
