"""Sample-quality metrics for generative models of MNIST.

* :mod:`~nanogan.metrics.parzen`: Parzen-window log-likelihood, Goodfellow et al.'s protocol.
"""

from .parzen import ParzenResult, mnist_parzen, parzen_evaluate, parzen_log_likelihood, select_sigma

__all__ = [
    "ParzenResult", "mnist_parzen", "parzen_evaluate", "parzen_log_likelihood", "select_sigma",
]
