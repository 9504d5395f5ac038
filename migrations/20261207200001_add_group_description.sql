-- A group's description (seed 002's group shape); empty when none was given, as a course's.
alter table groups add column description text not null default '';
