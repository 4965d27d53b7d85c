"""Analytics: live metrics, anomaly detection, predictions, alerting and insights (issue 10).

Imported on first use (`Telemetry.get_metrics()` …), never by `import vibekit_telemetry`.
"""

from __future__ import annotations

from .detect import THRESHOLDS, Anomaly, detect_anomalies
from .predict import Forecast, forecast
from .sketch import QuantileSketch

__all__ = ["THRESHOLDS", "Anomaly", "Forecast", "QuantileSketch", "detect_anomalies", "forecast"]
