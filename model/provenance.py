"""Where a bundle's training data came from: the label every page, answer and report shows."""

#: Trained on the synthetic cohort reconstructed from Li et al.'s published aggregates.
PROVENANCE_RECONSTRUCTED = "reconstructed-from-published-aggregates"
#: Trained on a center's own cohort.
PROVENANCE_CENTER = "center-cohort"


def is_reconstructed(manifest: dict) -> bool:
    """Whether a bundle's manifest says it was trained on the reconstructed cohort."""
    return manifest.get("provenance") == PROVENANCE_RECONSTRUCTED
