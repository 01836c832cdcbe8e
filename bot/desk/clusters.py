"""Grouping similar questions by their embeddings, so the report shows "12 people asked about parking permits"
instead of twelve lines."""

from __future__ import annotations

import numpy as np

SIMILAR = 0.6
"""Cosine similarity above which two questions count as the same topic (measured with MiniLM: same-topic
questions 0.62–0.94, different topics at most 0.44)."""


def cluster(vectors: np.ndarray, threshold: float = SIMILAR) -> list[list[int]]:
    """Greedy single pass: each vector joins the first group whose centroid it is similar to, else starts one.
    Returns groups of row indices, largest first (ties: earliest first). Deterministic, O(rows × groups)."""
    if len(vectors) == 0:
        return []
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    groups: list[list[int]] = []
    sums: list[np.ndarray] = []
    for index, vector in enumerate(unit):
        if sums:
            centroids = np.stack(sums)
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
            similarity = centroids @ vector
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                groups[best].append(index)
                sums[best] = sums[best] + vector
                continue
        groups.append([index])
        sums.append(vector.copy())
    return sorted(groups, key=lambda group: (-len(group), group[0]))
