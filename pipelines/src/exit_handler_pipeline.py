"""exit-handler-pipeline: an ExitHandler guarding two dependent tasks."""
from kfp import dsl

BASE_IMAGE = 'python:3.11'


@dsl.component(base_image=BASE_IMAGE)
def fail_op(message: str) -> str:
    """The guarded task that fails in fixtures (retried twice)."""
    import sys
    print(message)
    sys.exit(1)
    return message


@dsl.component(base_image=BASE_IMAGE)
def print_op(message: str) -> str:
    """Runs after fail_op; never reached when fail_op fails."""
    print(message)
    return message


@dsl.component(base_image=BASE_IMAGE)
def exit_op(user_input: str, status: dsl.PipelineTaskFinalStatus):
    """Exit task: always runs, receives the final status of the handler."""
    print(user_input)
    print('Pipeline status:', status.state)
    print('Job resource name:', status.pipeline_job_resource_name)
    print('Pipeline task name:', status.pipeline_task_name)
    print('Error code:', status.error_code)
    print('Error message:', status.error_message)


@dsl.pipeline(
    name='exit-handler-pipeline',
    description='Exit handler guarding a failing task and its dependant.')
def exit_handler_pipeline(message: str = 'Hello World!'):
    exit_task = exit_op(user_input='Exit handler has worked!')
    with dsl.ExitHandler(exit_task, name='cleanup-handler'):
        first_task = fail_op(message=message)
        first_task.set_retry(num_retries=2)
        print_op(message=first_task.output)


PIPELINE = exit_handler_pipeline
