from django.urls import path

from jobqueue.api import schedules, views

urlpatterns = [
    path("jobs", views.JobCollectionView.as_view(), name="jobs"),
    path("jobs/submit", views.JobCollectionView.as_view(http_method_names=["post"]), name="jobs-submit"),
    path("jobs/stats", views.JobStatsView.as_view(), name="jobs-stats"),
    path("jobs/<uuid:job_id>", views.JobDetailView.as_view(), name="job-detail"),
    path(
        "jobs/<uuid:job_id>/status", views.JobDetailView.as_view(http_method_names=["get"]), name="job-status"
    ),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
    path("schedules", schedules.ScheduleCollectionView.as_view(), name="schedules"),
    path("schedules/<uuid:schedule_id>", schedules.ScheduleDetailView.as_view(), name="schedule-detail"),
]
