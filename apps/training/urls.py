from django.urls import path

from apps.training import views

app_name = "training"

urlpatterns = [
    path("", views.job_list_view, name="list"),
    path("<int:job_id>/", views.job_detail_view, name="detail"),
    path("<int:job_id>/metrics.json", views.job_metrics_view, name="metrics"),
    path("<int:job_id>/compare/", views.job_compare_view, name="compare"),
    path("<int:job_id>/cancel/", views.job_cancel_view, name="cancel"),
    path("<int:job_id>/register-model/", views.job_register_model_view, name="register-model"),
    path("<int:job_id>/define/", views.job_define_view, name="define"),
    path("definitions/", views.definition_list_view, name="definitions"),
    path("definitions/<int:definition_id>/", views.definition_detail_view, name="definition"),
    path("definitions/<int:definition_id>/trigger/", views.definition_trigger_view, name="definition-trigger"),
    path("definitions/<int:definition_id>/suspend/", views.definition_suspend_view, name="definition-suspend"),
]
