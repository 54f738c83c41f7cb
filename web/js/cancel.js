// Older mails link to /cancel.html?token=…: the appointment's page is manage.html now,
// with the same token.
location.replace(`/manage.html${location.search}${location.hash}`);
