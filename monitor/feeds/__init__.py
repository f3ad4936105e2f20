"""Feed stage: fetch (httpx), parse (feedparser), schedule (pure), discover."""
