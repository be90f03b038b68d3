from django.urls import path

from emprops.api import collections, views

urlpatterns = [
    path("emprops/notifications", views.NotificationCollectionView.as_view(), name="emprops-notifications"),
    path("emprops/notifications/counts", views.NotificationCountsView.as_view(), name="emprops-counts"),
    path(
        "emprops/notifications/<row_id:notification_id>",
        views.NotificationDetailView.as_view(),
        name="emprops-notification",
    ),
    path(
        "emprops/notifications/<row_id:notification_id>/redeliver",
        views.NotificationRedeliverView.as_view(),
        name="emprops-notification-redeliver",
    ),
    path("user_notified", views.UserNotifiedView.as_view(), name="user-notified"),
    path("emprops/collections", collections.CollectionCollectionView.as_view(), name="emprops-collections"),
    path(
        "emprops/collections/<uuid:collection_id>",
        collections.CollectionDetailView.as_view(),
        name="emprops-collection",
    ),
    path(
        "emprops/collections/<uuid:collection_id>/generations",
        collections.CollectionGenerationsView.as_view(),
        name="emprops-collection-generations",
    ),
]
