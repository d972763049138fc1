"""Job middleware: code that wraps a job's execution, attached per job or per swarm.

A middleware is a class whose instances are callable as ``await middleware(context, input,
call_next)``. ``input`` is the value given when it was attached (stored as JSON with the job);
``call_next()`` runs the next middleware or, last, the job itself and returns its result. A
middleware can run code before and after, replace the result by returning something else, or
skip the job by not calling ``call_next``. Middleware runs in ascending priority (None last).
The onion that runs them lives in :mod:`.pipeline`.
"""

from hivemind_jobs.middleware.pipeline import ResolvedMiddleware, resolve_middleware, run_pipeline
from hivemind_jobs.middleware.protocol import CallNext, JobMiddleware

__all__ = ["CallNext", "JobMiddleware", "ResolvedMiddleware", "resolve_middleware", "run_pipeline"]
