"""Publishing content (``content.published``) to providers whose capabilities say they can.

A publisher takes the content (``contentId``, ``title``, ``url``, ``description``,
``media``, and ``format`` when it is ``story``) and the integration's own metadata (where to post, e.g. Slack's
``publishChannel``) and makes the provider's "create" call once; it returns
what identifies the post at the provider. The engine runs it as the ``publish``
sync log that the content.published handler queued.

A target the user names (a channel, a page) must be the connected account's own;
otherwise the run fails and nothing is posted (see publish_chat.py for Discord).

- SLACK: ``chat.postMessage`` to ``metadata.publishChannel`` (needs ``chat:write``);
  the workspace's bot token reaches that workspace's channels only.
- TWITTER: ``POST /2/tweets`` (needs ``tweet.write``); the text is cut to 280.
- DISCORD: ``POST /channels/{metadata.publishChannel}/messages`` as the
  application's bot (``DISCORD_BOT_TOKEN``; a user's OAuth token cannot post to
  a channel); the bot must have been added to that server, and the server must
  be one the connected user is in and manages (``GET /users/@me/guilds`` with
  their token, ``guilds`` scope). Without ``metadata.publishChannel``, a
  connection made with the optional ``webhook.incoming`` scope posts through
  the channel webhook the user made on Discord's consent screen (``POST
  /webhooks/{id}/{token}?wait=true``; no bot, no server check: the user chose
  that channel at Discord).
- LINKEDIN: ``POST /rest/posts`` as the member (``urn:li:person:{sub}``, the
  ``sub`` from ``/v2/userinfo``; needs ``w_member_social`` and ``openid``), a
  PUBLIC main-feed post whose commentary is the title and URL in LinkedIn's
  "little" text format (reserved characters escaped, else LinkedIn cuts the
  text at the first one), with an ``article`` block (source, title,
  description) when there is a URL: the Posts API does not scrape links. The
  post URN comes back in the ``x-restli-id`` header.
- FACEBOOK: ``POST /{page-id}/feed`` (``message``, ``link``) with that page's
  own access token from ``/me/accounts`` (needs ``pages_show_list``,
  ``pages_manage_posts`` and ``pages_read_engagement``). The page is
  ``metadata.publishPageId``, or the user's only page. The page token is used
  for that one call and never stored, logged or put in a message.
- INSTAGRAM (Instagram API with Instagram Login, graph.instagram.com; needs
  ``instagram_business_content_publish``): the content's first ``media`` item
  that is an image or a video (its ``type`` ``image``/``video`` or a MIME type,
  else its URL's extension) becomes a container, ``POST /{ig-user-id}/media``
  with ``image_url`` (Instagram takes JPEG only) or ``media_type=REELS`` +
  ``video_url``, and ``caption`` (title and URL, <= 2,200); a reel's
  container is polled (``GET /{container}?fields=status_code,status``) for a
  few seconds (``IG_POLL_DELAYS``) until FINISHED; then ``POST
  /{ig-user-id}/media_publish`` ``creation_id``. A reel still IN_PROGRESS
  after that defers the run (``NotReady``: back to PENDING with the container
  id, looked at again by the daemon until PUBLISH_PROCESSING_TIMEOUT). The ig
  user id is the connection's account id (``/me``'s ``user_id``), else ``GET
  /me``. Text alone cannot be posted (UsageProblem). If a step before
  media_publish fails (ERROR, a refused token, throttling) nothing is
  published: an unpublished container is invisible and Instagram drops it
  after 24 h, and a retried run (a refresh, a throttling wait) makes a new one.
  A media_publish without a clean answer asks the container (PUBLISHED: done;
  FINISHED: published now; a container is published at most once).
  A story (the content's ``format`` is ``story``) is a ``media_type=STORIES``
  container of exactly one image or video and no caption, through the same
  wait, deferral and media_publish; its id after a lost answer is the one story
  in ``GET /{ig-user-id}/stories`` made since the container (stories are not in
  ``/me/media`` and have no caption to match).

Creating calls go through ``publish_common.creating``: one that got no clean
answer (timeout, dropped connection, 5xx) is marked ``mayHavePosted``, and the
engine looks the post up where publish_reconcile can (X, Facebook pages).
- TIKTOK (Content Posting API, direct post; needs ``video.publish``): the
  creator's options from ``POST /v2/post/publish/creator_info/query/``, then
  ``POST /v2/post/publish/video/init/`` with ``post_info`` (title, the
  privacy level, the creator's comment/duet/stitch settings) and
  ``source_info {source: PULL_FROM_URL, video_url}`` (the first video in
  ``media``; the URL's domain or prefix must be verified in the TikTok app's
  settings). The privacy level is ``metadata.publishPrivacyLevel`` when set
  (it must be one the creator allows), else SELF_ONLY: TikTok wants the
  creator to choose, and an unaudited app may only post SELF_ONLY. TikTok
  pulls and posts the video asynchronously: the result is the ``publishId``
  with the status of one ``status/fetch`` made right after (a failed status
  fetch is not a failed post: the post was accepted).
- YOUTUBE (``videos.insert`` as a resumable upload; needs ``youtube.upload``):
  the content's first video, streamed from its URL through the SSRF guard to
  YouTube a chunk at a time (publish_video.py); private unless
  ``metadata.publishPrivacyStatus`` says otherwise (an unaudited API project's
  uploads are locked private by YouTube anyway). The result is the video id.
"""

from __future__ import annotations

from nexusctl.providers.sync.publish_chat import discord, slack
from nexusctl.providers.sync.publish_common import compose
from nexusctl.providers.sync.publish_media import instagram, tiktok
from nexusctl.providers.sync.publish_posts import facebook, linkedin, twitter
from nexusctl.providers.sync.publish_video import youtube

__all__ = ["PUBLISHERS", "compose"]

PUBLISHERS = {
    "SLACK": slack,
    "TWITTER": twitter,
    "DISCORD": discord,
    "LINKEDIN": linkedin,
    "FACEBOOK": facebook,
    "INSTAGRAM": instagram,
    "TIKTOK": tiktok,
    "YOUTUBE": youtube,
}
