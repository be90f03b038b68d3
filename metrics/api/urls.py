from django.urls import path

from metrics.api.views import JobMetricsView

urlpatterns = [path("jobs/metrics", JobMetricsView.as_view(), name="jobs-metrics")]
