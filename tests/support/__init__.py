"""Helpers shared by the test modules (conftest.py files only define fixtures; no test module imports
conftest or another test module): telemetry capture, replay of recordings, asyncio clients, fuzzing
strategies, stream frames, the emulator's request builders, the collector stand-in, the CLI runner."""
