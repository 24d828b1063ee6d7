from celery import shared_task

from inference import services


@shared_task(name="inference.score_chunk")
def score_chunk(job_id: int, image_ids: list[int]) -> None:
    services.chunk_score(job_id=job_id, image_ids=image_ids)


@shared_task(name="inference.queue_uncertain")
def queue_uncertain(job_id: int) -> None:
    services.job_queue_uncertain(job_id=job_id)
