from django.db import models


class WorkerHeartbeat(models.Model):
    """Last time a Celery worker ran the beat heartbeat task: proves broker -> worker -> database end to end."""

    hostname = models.CharField(max_length=200, unique=True)
    last_seen_at = models.DateTimeField()
    beats = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return f"{self.hostname} @ {self.last_seen_at:%H:%M:%S}"
