"""The clinical pathway: pure functions from a patient's record and draft orders to assessments.

Imports nothing from the rest of cds_spine; `now` and the knowledge are passed in.
"""
from .assessment import Assessment, Decision, assess
from .findings import Finding
from .knowledge import Knowledge, KnowledgeError, load_knowledge
from .orders import ClassifiedOrder, classify_all
from .record import DraftOrder, PatientRecord
from .standing import Criteria, PatientSummary, summarize_patient

__all__ = [
    "Assessment", "ClassifiedOrder", "Criteria", "Decision", "DraftOrder", "Finding", "Knowledge", "KnowledgeError",
    "PatientRecord", "PatientSummary", "assess", "classify_all", "load_knowledge", "summarize_patient",
]
