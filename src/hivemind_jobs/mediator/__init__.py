"""In-process messaging: events (fan-out) and requests (first answer wins)."""

from hivemind_jobs.mediator.mediator import EventHandler, Mediator, Request, RequestHandler

__all__ = ["EventHandler", "Mediator", "Request", "RequestHandler"]
