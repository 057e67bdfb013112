"""Conditional latent generation (DESIGN.md §6): measurement operators, conditional score
estimators (CDE, CDiffE, CMDE, VS-CMDE), DLSM classifier guidance, Gaussian-class oracles, and
one sampling API for all of them (``model.sample(n, condition, method)``, :mod:`.sampling`)."""

from latentnav.conditional.condition import as_condition, check_condition, check_labels, one_hot
from latentnav.conditional.dlsm import (
    CLASSIFIER_LOSSES,
    ClassifierConfig,
    NoisyClassifier,
    ce_loss,
    classifier_guided_score,
    dlsm_loss,
    kernel_score,
    log_likelihood_grad,
)
from latentnav.conditional.estimators import (
    CDE,
    CMDE,
    ESTIMATORS,
    VSCMDE,
    CDiffE,
    Estimator,
    make_estimator,
)
from latentnav.conditional.fit import fit_classifier, fit_estimator
from latentnav.conditional.net import NoiseNet, NoiseNetConfig
from latentnav.conditional.operators import (
    OPERATORS,
    Downsample,
    Operator,
    RandomMask,
    SquareHole,
    make_operator,
)
from latentnav.conditional.oracle import GaussianClasses, OracleClassifier, score_error_by_time
from latentnav.conditional.sampling import (
    ClassifierGuidance,
    ConditionalModel,
    EstimatorModel,
    Measurement,
    OracleModel,
    class_labels,
)

__all__ = [
    "CDE",
    "CDiffE",
    "CMDE",
    "VSCMDE",
    "Estimator",
    "ESTIMATORS",
    "make_estimator",
    "NoiseNet",
    "NoiseNetConfig",
    "fit_estimator",
    "fit_classifier",
    "ClassifierConfig",
    "NoisyClassifier",
    "kernel_score",
    "log_likelihood_grad",
    "ce_loss",
    "dlsm_loss",
    "CLASSIFIER_LOSSES",
    "classifier_guided_score",
    "GaussianClasses",
    "OracleClassifier",
    "ConditionalModel",
    "EstimatorModel",
    "ClassifierGuidance",
    "OracleModel",
    "Measurement",
    "class_labels",
    "score_error_by_time",
    "Operator",
    "RandomMask",
    "SquareHole",
    "Downsample",
    "OPERATORS",
    "make_operator",
    "one_hot",
    "check_labels",
    "check_condition",
    "as_condition",
]
