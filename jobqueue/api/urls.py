from django.urls import path

from jobqueue.api import dead_letters, schedules, views

urlpatterns = [
    path("jobs", views.JobCollectionView.as_view(), name="jobs"),
    path("jobs/submit", views.JobCollectionView.as_view(http_method_names=["post"]), name="jobs-submit"),
    path("jobs/batch", views.JobBatchView.as_view(), name="jobs-batch"),
    path("jobs/stats", views.JobStatsView.as_view(), name="jobs-stats"),
    path("jobs/<uuid:job_id>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<uuid:job_id>/events", views.JobTimelineView.as_view(), name="job-events"),
    path("dead-letters", dead_letters.DeadLetterCollectionView.as_view(), name="dead-letters"),
    path(
        "dead-letters/requeue", dead_letters.DeadLetterBulkRequeueView.as_view(), name="dead-letters-requeue"
    ),
    path(
        "dead-letters/<row_id:dead_letter_id>",
        dead_letters.DeadLetterDetailView.as_view(),
        name="dead-letter",
    ),
    path(
        "dead-letters/<row_id:dead_letter_id>/requeue",
        dead_letters.DeadLetterRequeueView.as_view(),
        name="dead-letter-requeue",
    ),
    path("schedules", schedules.ScheduleCollectionView.as_view(), name="schedules"),
    path("schedules/<uuid:schedule_id>", schedules.ScheduleDetailView.as_view(), name="schedule-detail"),
]
