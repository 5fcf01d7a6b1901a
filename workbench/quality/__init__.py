"""Quality control over several annotators and review rounds: agreement, consensus, label errors,
completeness and the final labels to train on."""
