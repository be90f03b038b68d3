from django.urls import path

from workflows.api import views

urlpatterns = [
    path("workflows", views.WorkflowCollectionView.as_view(), name="workflows"),
    path("workflows/stats", views.WorkflowStatsView.as_view(), name="workflows-stats"),
    # The replaced system's clients create workflows here (it fell into the detail route: 405).
    path(
        "workflows/create",
        views.WorkflowCollectionView.as_view(http_method_names=["post"]),
        name="workflows-create",
    ),
    path("workflows/<str:workflow_id>", views.WorkflowDetailView.as_view(), name="workflow-detail"),
    path(
        "workflows/<str:workflow_id>/status",
        views.WorkflowDetailView.as_view(http_method_names=["get"]),
        name="workflow-status",
    ),
    path("workflows/<str:workflow_id>/cancel", views.WorkflowCancelView.as_view(), name="workflow-cancel"),
]
