"""Helpers the tests and benches share: a fake OpenAI-compatible server, data builders, browser helpers."""
