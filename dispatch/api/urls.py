from django.urls import path

from dispatch.api import jobs, views

urlpatterns = [
    path("jobs/<uuid:job_id>", jobs.JobDetailView.as_view(), name="job-detail"),
    path(
        "jobs/<uuid:job_id>/status", jobs.JobDetailView.as_view(http_method_names=["get"]), name="job-status"
    ),
    path("jobs/<uuid:job_id>/result", jobs.JobResultView.as_view(), name="job-result"),
    path("machines", views.MachineCollectionView.as_view(), name="machines"),
    path("machines/<str:machine_id>", views.MachineDetailView.as_view(), name="machine-detail"),
    path("machines/<str:machine_id>/drain", views.MachineDrainView.as_view(drain=True), name="machine-drain"),
    path(
        "machines/<str:machine_id>/resume", views.MachineDrainView.as_view(drain=False), name="machine-resume"
    ),
    path("workers", views.WorkerCollectionView.as_view(), name="workers"),
    path("pools", views.PoolsView.as_view(), name="pools"),
    path("fleet/refusals", views.RefusalsView.as_view(), name="fleet-refusals"),
]
