from django.urls import path

from events.api import views

urlpatterns = [
    path("events", views.EventReplayView.as_view(), name="events"),
]
