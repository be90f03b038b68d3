from django.urls import path

from accounts.api import views

urlpatterns = [
    path("tenants", views.TenantCollectionView.as_view(), name="tenants"),
    path("tenants/<row_id:tenant_id>", views.TenantDetailView.as_view(), name="tenant-detail"),
    path("keys", views.KeyCollectionView.as_view(), name="keys"),
    path("keys/<row_id:key_id>", views.KeyDetailView.as_view(), name="key-detail"),
    path("keys/<row_id:key_id>/revoke", views.KeyRevokeView.as_view(), name="key-revoke"),
]
