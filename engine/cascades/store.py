"""The catalog's side of cascades: specialized models with their lineage
(``mallard.specialized_models``, reused by later queries on the same video and question)
and one ``mallard.cascades`` row per query answered under a contract."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.cascades.specialized import SpecializedModel

if TYPE_CHECKING:
    from engine.session import Session


@dataclass
class StoredSpecialized:
    """A specialized model as the catalog holds it, with the samples it was made from."""

    specialized_id: int
    model: SpecializedModel
    training_frames: np.ndarray
    training_answers: np.ndarray
    calibration_frames: np.ndarray
    calibration_answers: np.ndarray
    calibration_scores: np.ndarray

    def sample_answers(self) -> dict[int, bool]:
        """The reference model's answers on every sampled frame, by frame_id."""
        ids = np.concatenate([self.training_frames, self.calibration_frames]).tolist()
        answers = np.concatenate([self.training_answers, self.calibration_answers]).tolist()
        return dict(zip(ids, answers))


def find_specialized(session: Session, model: str, version: int, video_key: str,
                     question: str, prefix: bool = False) -> StoredSpecialized | None:
    """The newest specialized model for this reference model version, video and question
    (with ``prefix``, any question starting with ``question``)."""
    match = "starts_with(question, ?)" if prefix else "question = ?"
    row = session.sql(
        "SELECT specialized_id, weights, mean, std, resolution, architecture, training_seconds, training_frames, "
        "training_answers, calibration_frames, calibration_answers, calibration_scores "
        f"FROM mallard.specialized_models WHERE model = ? AND model_version = ? AND video_key = ? AND {match} "
        "ORDER BY specialized_id DESC LIMIT 1", [model, version, video_key, question]).fetchone()
    if row is None:
        return None
    specialized = SpecializedModel(bytes(row[1]), tuple(row[2]), tuple(row[3]), int(row[4]), row[5], float(row[6]))
    return StoredSpecialized(int(row[0]), specialized, np.array(row[7], np.int64), np.array(row[8], bool),
                             np.array(row[9], np.int64), np.array(row[10], bool), np.array(row[11], np.float64))


def save_specialized(session: Session, *, model: str, version: int, video_key: str, frames_table: str,
                     question: str, stored: StoredSpecialized, seed: int) -> int:
    """Insert a specialized model; its new id."""
    specialized_id = int(session.scalar("SELECT coalesce(max(specialized_id), 0) + 1 FROM mallard.specialized_models"))
    m = stored.model
    session.sql(
        "INSERT INTO mallard.specialized_models (specialized_id, model, model_version, video_key, frames_table, "
        "question, architecture, resolution, mean, std, weights, training_frames, training_answers, "
        "calibration_frames, calibration_answers, calibration_scores, seed, training_seconds) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [specialized_id, model, version, video_key, frames_table, question, m.architecture, m.resolution,
         list(m.mean), list(m.std), m.weights, stored.training_frames.tolist(), stored.training_answers.tolist(),
         stored.calibration_frames.tolist(), stored.calibration_answers.tolist(),
         stored.calibration_scores.tolist(), seed, m.training_seconds])
    return specialized_id


def record_cascade(session: Session, values: dict[str, Any]) -> int:
    """Insert one ``mallard.cascades`` row (``values`` by column name); its id."""
    cascade_id = int(session.scalar("SELECT coalesce(max(cascade_id), 0) + 1 FROM mallard.cascades"))
    values = {"cascade_id": cascade_id, **values}
    if "breakdown" in values:
        values["breakdown"] = json.dumps(values["breakdown"])
    columns = ", ".join(values)
    slots = ", ".join("?" for _ in values)
    session.sql(f"INSERT INTO mallard.cascades ({columns}) VALUES ({slots})", list(values.values()))
    return cascade_id
