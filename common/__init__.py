"""What every layer shares: the OpenAI-compatible chat client and the settings reader."""

from common.openai_client import ChatClient, ChatConfig, ChatError, ChatResult, complete_sync
from common.settings import DEFAULT_DEPTH_MODEL, build, load_settings, parse_overrides, read_settings

__all__ = [
    "ChatClient",
    "ChatConfig",
    "ChatError",
    "ChatResult",
    "complete_sync",
    "DEFAULT_DEPTH_MODEL",
    "build",
    "load_settings",
    "parse_overrides",
    "read_settings",
]
