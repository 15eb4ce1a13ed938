"""Sample-quality metrics for generative models of MNIST.

* :mod:`~nanogan.metrics.parzen`: Parzen-window log-likelihood, Goodfellow et al.'s protocol.
* :mod:`~nanogan.metrics.classifier`, :mod:`~nanogan.metrics.features`: the MNIST classifier CNN
  (built and trained with nanogan), its softmax cross-entropy, its cached weights, its features.
* :mod:`~nanogan.metrics.fid`: Frechet distance in the classifier's features (FID-MNIST).
* :mod:`~nanogan.metrics.inception`: classifier-based Inception Score, class histogram.
* :mod:`~nanogan.metrics.precision_recall`: improved precision and recall (k-NN manifolds).
* :mod:`~nanogan.metrics.mmd`: unbiased MMD (and KID's subset protocol).
* :mod:`~nanogan.metrics.evaluate`: all of them at once, and the table of
  ``python -m nanogan evaluate``.
"""

from .classifier import log_softmax, mnist_classifier, softmax_cross_entropy, train_classifier
from .evaluate import evaluate, format_table, load_samples
from .features import MnistFeatures, load_classifier
from .fid import fid, frechet_distance, gaussian_stats
from .inception import class_histogram, inception_score
from .mmd import mmd2_unbiased, subset_mmd2
from .parzen import ParzenResult, mnist_parzen, parzen_evaluate, parzen_log_likelihood, select_sigma
from .precision_recall import knn_radii, precision_recall

__all__ = [
    "MnistFeatures", "ParzenResult", "class_histogram", "evaluate", "fid", "format_table",
    "frechet_distance", "gaussian_stats", "inception_score", "knn_radii", "load_classifier",
    "load_samples", "log_softmax", "mmd2_unbiased", "mnist_classifier", "mnist_parzen",
    "parzen_evaluate", "parzen_log_likelihood", "precision_recall", "select_sigma",
    "softmax_cross_entropy", "subset_mmd2", "train_classifier",
]
