"""Prompts and replies as chat messages, passed to the server as they come.

prm's server writes ``{"role", "content"}`` messages as the model's training text with the
template its checkpoint records (PROTOCOL.md, "Chat messages": for the built-in hh-rlhf data,
``"Human: ...\\n\\nAssistant: ..."`` turns, system messages left out), so the adapters (TRL, verl)
send messages unrendered. What is left here is what those frameworks give that the protocol
does not take: content as a list of parts, a plain question string, a completion of several
messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

from .messages import PromptInput, ReplyInput

#: The tag that opens the training data's first turn: a prompt string starting with it is
#: already in the format.
FIRST_TAG = "Human:"

#: A chat message: ``{"role": ..., "content": ...}``; content is a string or a list of parts,
#: whose ``{"type": "text", "text": ...}`` parts are used.
Message = Mapping[str, Any]
Prompt = Union[str, Sequence[Message]]


def wire_prompt(prompt: Prompt) -> PromptInput:
    """A prompt for the server to write out with the model's template.

    - Messages: sent as ``{"role", "content"}`` with their text content; the server checks the
      roles (``system``, ``user``, ``assistant``) and writes the turns.
    - A string already in the format (it starts with ``"Human:"``): as is.
    - Any other string (TRL's plain prompts): one user message, so a plain call and a
      conversational call score the same dialogue the same.
    """
    if isinstance(prompt, str):
        if prompt.lstrip().startswith(FIRST_TAG):
            return prompt
        return [{"role": "user", "content": prompt}]
    return [_wire_message(message) for message in prompt]


def wire_reply(completion: str | Sequence[Message]) -> ReplyInput:
    """A reply: a string as is; one message as the message; several messages' contents joined by
    blank lines (a reply is one message on the wire)."""
    if isinstance(completion, str):
        return completion
    if len(completion) == 1:
        return _wire_message(completion[0])
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


def _wire_message(message: Message) -> dict[str, str]:
    text = message_text(message)
    role = message.get("role")
    if not isinstance(role, str):
        raise ValueError(f"message without a string 'role': {message!r}")
    return {"role": role, "content": text}
