from django.urls import path

from webhooks.api import views

urlpatterns = [
    path("webhooks", views.EndpointCollectionView.as_view(), name="webhooks"),
    path(
        "webhooks/default-secret/rotate",
        views.DefaultSecretRotateView.as_view(),
        name="webhooks-default-secret",
    ),
    path("webhooks/deliveries", views.DeliveryCollectionView.as_view(), name="webhook-deliveries"),
    path("webhooks/deliveries/redeliver", views.BulkRedeliverView.as_view(), name="webhook-bulk-redeliver"),
    path(
        "webhooks/deliveries/<row_id:delivery_id>",
        views.DeliveryDetailView.as_view(),
        name="webhook-delivery",
    ),
    path(
        "webhooks/deliveries/<row_id:delivery_id>/redeliver",
        views.DeliveryRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("webhooks/<uuid:endpoint_id>", views.EndpointDetailView.as_view(), name="webhook-detail"),
    path(
        "webhooks/<uuid:endpoint_id>/rotate-secret",
        views.EndpointRotateSecretView.as_view(),
        name="webhook-rotate",
    ),
    path("webhooks/<uuid:endpoint_id>/test", views.EndpointTestView.as_view(), name="webhook-test"),
    path("webhooks/<uuid:endpoint_id>/stats", views.EndpointStatsView.as_view(), name="webhook-stats"),
    path(
        "webhooks/<uuid:endpoint_id>/deliveries",
        views.EndpointDeliveriesView.as_view(),
        name="webhook-endpoint-deliveries",
    ),
]
