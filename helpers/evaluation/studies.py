"""What the reproduced studies and the PatchCore references published — typed once, read everywhere.

The notebooks show these beside our numbers and the report (07) lists them, always with how each was
obtained: none of them was measured on our held-out test images.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["STUDY_SUPERVISED", "STUDY_PROBE", "STUDY_MULTITASK", "PUBLISHED_WRN50", "study_rows"]

#: Study 000, supervised ResNet-50, as reported (its own protocol).
STUDY_SUPERVISED = {"accuracy": 0.9263, "f1": 0.8081, "roc_auc": 0.9496, "pr_auc": 0.8922}
#: Study 000, SimCLR + linear probe, as reported. Its probe was *trained* on a 10% sample of its test data (it
#: does not say how that sample was drawn); these figures are its own.
STUDY_PROBE = {"f1": 0.8418, "recall": 0.9936, "fpr": 0.9893}
#: Study 001, Keras multi-task CNN, as reported — measured on its *training* data. Its labels went through
#: scikit-learn's ``LabelEncoder`` ("defective" → 0, "good" → 1), so its defect F1 may be the good class's.
STUDY_MULTITASK = {"defect_accuracy": 0.963, "defect_f1": 0.959, "defect_auc": 0.987, "category_accuracy": 0.982}

#: anomalib's PatchCore reproduction (Wide ResNet-50, seed 42), MVTec AD standard protocol — from
#: src/anomalib/models/image/patchcore/README.md. The PatchCore paper reports 0.992 mean image AUROC.
PUBLISHED_WRN50 = {
    "image_auroc": {"carpet": 0.984, "grid": 0.959, "leather": 1.000, "tile": 1.000, "wood": 0.989,
                    "bottle": 1.000, "cable": 0.990, "capsule": 0.982, "hazelnut": 1.000, "metal_nut": 0.994,
                    "pill": 0.924, "screw": 0.960, "toothbrush": 0.933, "transistor": 1.000, "zipper": 0.982},
    "pixel_auroc": {"carpet": 0.988, "grid": 0.968, "leather": 0.991, "tile": 0.961, "wood": 0.934,
                    "bottle": 0.984, "cable": 0.988, "capsule": 0.988, "hazelnut": 0.987, "metal_nut": 0.989,
                    "pill": 0.980, "screw": 0.989, "toothbrush": 0.988, "transistor": 0.981, "zipper": 0.983},
}


def study_rows() -> pd.DataFrame:
    """The studies' own figures as report rows, each with how it was obtained (never on our test images)."""
    m = STUDY_MULTITASK
    return pd.DataFrame([
        {"approach": "study: supervised ResNet-50", **STUDY_SUPERVISED,
         "how": "as reported by the study (its own protocol)"},
        {"approach": "study: SimCLR + probe", **STUDY_PROBE,
         "how": "as reported; the probe was trained on a 10% sample of the study's test data"},
        {"approach": "study: Keras multi-task", "accuracy": m["defect_accuracy"], "f1": m["defect_f1"],
         "roc_auc": m["defect_auc"], "category_accuracy": m["category_accuracy"],
         "how": "as reported, on the study's training data; its F1 may be the good class's (LabelEncoder: "
                "defective = 0)"},
    ])
