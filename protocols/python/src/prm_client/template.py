"""The model's training text format, for prompts and replies that come as chat messages.

prm's built-in data (hh-rlhf style) writes a conversation as ``"Human: ...\\n\\nAssistant: ..."``
turns, and a model scores a reply to the prompt text it was trained on. Until the server renders
chat messages with the checkpoint's own template, the adapters (TRL, verl) render them here, in
:func:`render_prompt` alone, so that it can later defer to the server in one place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

#: How conversational roles are written, as in the training data. Other roles (``tool``, ...)
#: are written capitalised.
ROLE_NAMES = {"user": "Human", "assistant": "Assistant"}

#: The tag that opens the training data's first turn: a prompt string starting with it is
#: already in the format.
FIRST_TAG = f"{ROLE_NAMES['user']}:"

#: A chat message: ``{"role": ..., "content": ...}``; content is a string or a list of parts,
#: whose ``{"type": "text", "text": ...}`` parts are used.
Message = Mapping[str, Any]
Prompt = Union[str, Sequence[Message]]


def render_prompt(prompt: Prompt) -> str:
    """A prompt as the model's training data writes it, ending with the ``"Assistant:"`` tag that
    the scored reply answers.

    - Messages: turns ``"Human: content"`` / ``"Assistant: content"`` joined by blank lines.
      **System messages are left out**: the training data has no system turns, and text the model
      never saw in that position would shift every score; pass what a system prompt says about
      the user as ``user_info`` instead. Other roles are written capitalised (``"Tool: ..."``).
    - A string already in the format (it starts with ``"Human:"``): as is.
    - Any other string: one human turn, as the message ``{"role": "user", "content": prompt}``
      would be, so a plain call and a conversational call score the same dialogue the same.
    """
    if isinstance(prompt, str):
        if prompt.lstrip().startswith(FIRST_TAG):
            return prompt
        prompt = [{"role": "user", "content": prompt}]
    turns = [f"{_role(message)}: {message_text(message)}" for message in prompt if _role(message) != "System"]
    return "\n\n".join([*turns, f"{ROLE_NAMES['assistant']}:"])


def render_completion(completion: str | Sequence[Message]) -> str:
    """A reply's text: a string as is; messages' contents joined by blank lines."""
    if isinstance(completion, str):
        return completion
    return "\n\n".join(message_text(message) for message in completion)


def message_text(message: Message) -> str:
    if not isinstance(message, Mapping):
        raise TypeError(f"a conversational message must be a mapping with 'role' and 'content', got {message!r}")
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content if isinstance(part, Mapping) and part.get("type") == "text")
    raise ValueError(f"message without text 'content': {message!r}")


def _role(message: Message) -> str:
    role = message.get("role") if isinstance(message, Mapping) else None
    if not isinstance(role, str):
        raise ValueError(f"message without a string 'role': {message!r}")
    return ROLE_NAMES.get(role, role.capitalize())
