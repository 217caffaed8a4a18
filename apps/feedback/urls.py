from django.urls import path

from apps.feedback import views

app_name = "feedback"

urlpatterns = [
    path("prompts/<int:prompt_id>/answer/", views.answer_view, name="answer"),
    path("prompts/<int:prompt_id>/dismiss/", views.dismiss_view, name="dismiss"),
]
