"""The ids of the three CDS services. The protocol serves them (cdshooks.services) and the audit counts by
them; they live at the bottom of the house so that neither has to import the other."""
from __future__ import annotations

ORDER_SELECT = "spine-pathway-order-select"
ORDER_SIGN = "spine-pathway-order-sign"
PATIENT_VIEW = "spine-pathway-patient-view"
SERVICE_IDS = (ORDER_SELECT, ORDER_SIGN, PATIENT_VIEW)
