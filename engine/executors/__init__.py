"""Executors: one module per capability, one function per extended statement.

An executor is ``fn(session, node) -> StatementResult``: ``node`` is the parsed statement
with its parameters already bound.  It validates first, without writing, and does its
writes inside ``session.atomic()`` so a failure leaves nothing.  Statement classes reach
their executor through :data:`engine.registry.EXECUTORS` (no if/elif ladder).
"""
