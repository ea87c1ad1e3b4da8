"""The budget guard's internal signal, in a module of its own so that the lifecycle, which catches
:class:`RefuseRequest` on every call, need not import :mod:`.prediction`: with ``count_tokens="off"``
(the default) prediction is never imported, which keeps it (and its imports) out of every cold start.

The public :class:`~otel_bedrock_tokens.prediction.TokenBudgetExceeded` is defined in :mod:`.budget`
and imported from :mod:`.prediction`, whose name it keeps (``__module__``): its qualified name is the
``error.type`` of a refused call's span."""

from __future__ import annotations


class RefuseRequest(Exception):
    """Internal: the budget guard refused; the lifecycle ends the span and raises ``error`` instead."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
