from django.urls import path

from machines.api import views

urlpatterns = [
    path("fleet/join", views.JoinView.as_view(), name="fleet-join"),
    path("join-tokens", views.JoinTokenCollectionView.as_view(), name="join-tokens"),
    path(
        "join-tokens/<row_id:token_id>/revoke", views.JoinTokenRevokeView.as_view(), name="join-token-revoke"
    ),
    path("worker-credentials", views.WorkerCredentialCollectionView.as_view(), name="worker-credentials"),
    path(
        "worker-credentials/<str:worker_id>/revoke",
        views.WorkerCredentialRevokeView.as_view(),
        name="worker-credential-revoke",
    ),
]
