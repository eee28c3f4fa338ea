"""The continual-learning metrics on hand-made accuracy matrices."""

import pytest

from ghost.continual.metrics import (
    average_accuracy,
    average_forgetting,
    backward_transfer,
    forgetting,
    matrix_metrics,
    median_matrix,
    spread,
    summarize,
)

# R[i][j]: accuracy on task j after training task i.
R = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.1],
    [0.3, 0.5, 0.7],
]


def test_metrics_of_a_hand_made_matrix():
    assert average_accuracy(R) == pytest.approx((0.3 + 0.5 + 0.7) / 3)
    assert forgetting(R) == pytest.approx([0.9 - 0.3, 0.8 - 0.5])
    assert average_forgetting(R) == pytest.approx(0.45)
    assert backward_transfer(R) == pytest.approx(((0.3 - 0.9) + (0.5 - 0.8)) / 2)
    assert matrix_metrics(R)["last_task_accuracy"] == 0.7


def test_forgetting_is_from_the_best_earlier_score_and_bwt_from_just_after_training():
    # Task 0 improved while task 1 was trained (0.5 -> 0.8), then fell to 0.6.
    improved = [[0.5, 0.0, 0.0], [0.8, 0.9, 0.0], [0.6, 0.9, 1.0]]
    assert forgetting(improved) == pytest.approx([0.2, 0.0])
    assert backward_transfer(improved) == pytest.approx((0.1 + 0.0) / 2)  # positive: it helped


def test_a_single_row_joint_run_has_accuracy_but_no_forgetting():
    joint = [[0.9, 0.8, 0.7]]
    metrics = matrix_metrics(joint)
    assert metrics["average_accuracy"] == pytest.approx(0.8)
    assert metrics["average_forgetting"] is None and metrics["backward_transfer"] is None
    assert summarize([joint, joint])["average_forgetting"] is None


def test_spread_over_seeds():
    other = [[1.0, 0.0, 0.0], [0.2, 0.6, 0.0], [0.1, 0.2, 0.9]]
    third = [[0.8, 0.0, 0.0], [0.7, 0.7, 0.0], [0.5, 0.6, 0.5]]
    summary = summarize([R, other, third])
    accuracy = summary["average_accuracy"]
    assert accuracy["median"] == pytest.approx(0.5)  # 0.5, 0.4, 0.5333
    assert accuracy["min"] == pytest.approx(0.4) and accuracy["max"] == pytest.approx(1.6 / 3)
    assert summary["forgetting"][0]["values"] == pytest.approx([0.6, 0.9, 0.3])
    assert median_matrix([R, other, third])[2] == pytest.approx([0.3, 0.5, 0.7])
    assert spread([0.1, None]) is None
