from django.apps import AppConfig


class EmpropsConfig(AppConfig):
    name = "emprops"
