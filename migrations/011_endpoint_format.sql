-- How an endpoint's requests are framed (webhook.EndpointConfig.Format):
-- NULL is the default, Standard Webhooks; the CloudEvents 1.0 formats send
-- the message as an event, in HTTP binary or structured mode, still signed
-- with the Standard Webhooks headers. cloudevents_source is the events'
-- source attribute (NULL: "herald"). Both columns are NULL on existing rows,
-- so adding them rewrites nothing and leaves every endpoint as it was.
ALTER TABLE outbox.endpoints
    ADD COLUMN format text
        CONSTRAINT endpoints_format_check
        CHECK (format IN ('standard-webhooks', 'cloudevents-binary', 'cloudevents-structured')),
    ADD COLUMN cloudevents_source text
        CONSTRAINT endpoints_cloudevents_source_check
        CHECK (cloudevents_source <> '' AND cloudevents_source !~ '[[:cntrl:][:space:]]');

---- create above / drop below ----

ALTER TABLE outbox.endpoints DROP COLUMN cloudevents_source, DROP COLUMN format;
