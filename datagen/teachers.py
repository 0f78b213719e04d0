"""The two teachers behind `sif generate`: a VLM over the OpenAI-compatible API, and templates.

Both take a prepared sample (plan, question, answer and, for the VLM, the messages with the
step images) and return the raw reply text; checking and storing are the pipeline's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from common.openai_client import ChatClient
from datagen.templates import template_reply
from sif.plan import FocusPlan


@dataclass
class TeacherJob:
    """What a teacher needs for one sample."""

    question: str
    answer: str
    plan: FocusPlan
    messages: list[dict] | None = None  # the VLM's request; None for the template teacher


@dataclass
class TeacherReply:
    text: str
    usage: dict = field(default_factory=dict)
    attempts: int = 0


class TemplateTeacher:
    """Offline: fills step texts from templates (marked as template text when stored)."""

    name = "template"
    needs_images = False

    async def write(self, job: TeacherJob) -> TeacherReply:
        return TeacherReply(template_reply(job.plan, job.question, job.answer))


class OpenAITeacher:
    """A teacher VLM behind an OpenAI-compatible chat API (retries and limits are the client's)."""

    name = "openai"
    needs_images = True

    def __init__(self, client: ChatClient, **params):
        self.client = client
        self.params = {k: v for k, v in params.items() if v is not None}

    async def write(self, job: TeacherJob) -> TeacherReply:
        if job.messages is None:
            raise ValueError("the VLM teacher needs the request's messages: prepare its jobs with needs_images=True")
        result = await self.client.complete(job.messages, **self.params)
        return TeacherReply(result.text, result.usage, result.attempts)
